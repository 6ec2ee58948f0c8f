"""pytest plugin: collects snippets and runnable fences as test items."""
