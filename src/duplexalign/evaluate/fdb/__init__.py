"""Full-Duplex-Bench compatibility: score any model's outputs laid out as FDB expects
(`layout`, `score`, `judge`, `table`, `folder`), and write our rollouts in that layout (`write`).
The rules themselves are `duplexalign.fdb_rules`."""
