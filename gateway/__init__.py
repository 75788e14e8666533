"""The pool gateway: terminates client mTLS, maps each certificate to its allocation's worker, proxies."""
