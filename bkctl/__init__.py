"""``bkctl``: the CI-side client of the allocation API (build, allocate, env, release, renew, status, pools,
doctor)."""

__all__: list[str] = []
