"""The stages a pipeline is built from; each module holds one."""
