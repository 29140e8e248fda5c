"""On-call runbooks: fabric tasks that on-call staff run against a host of the inventory."""
