"""Sign-up, log-in, users and the customers they act for."""
