"""The composition root: the runtime, the roles a process runs, and how they are served."""
