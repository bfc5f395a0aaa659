"""imgpipe processor: downloads images and recompresses them as JPEG quality 50."""
