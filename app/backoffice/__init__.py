"""The operator's back office at /admin: server-rendered pages for operators only."""
