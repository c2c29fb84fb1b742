"""Report: collects a run's training metrics, issue counts and evaluations into report.md/.html."""
