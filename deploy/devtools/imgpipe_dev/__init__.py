"""Local development tooling: the broker and database the stack needs, the stack, the demo."""
