"""The ENS local stack: the service on one machine, no AWS account (`make run`)."""
