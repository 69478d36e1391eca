"""Starting and stopping: setup(), its processors and OTLP exporters, exit, child processes."""
