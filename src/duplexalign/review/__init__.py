"""Human review of a run: decisions log (store), agreement metrics, the web app and Label Studio interop."""
