"""A stand-in buildkitd: BuildKit's ``moby.buildkit.v1.Control`` gRPC service, partially.

``python -m kubesim.buildkitd`` accepts buildkitd's command line (``--addr`` repeated with
``unix://`` and ``tcp://`` addresses, ``--tlscacert``/``--tlscert``/``--tlskey``, ``--config`` parsed
as TOML, ``--root``; any other buildkitd flag is accepted and ignored). TCP listeners serve mTLS when
the TLS flags are given — client certificates REQUIRED and verified against ``--tlscacert`` — unix
sockets serve plaintext, as buildkitd does. Implemented: ListWorkers, Info, DiskUsage and Session
(a bidirectional stream that echoes every message: the bulk-bytes method for throughput tests).
"""
