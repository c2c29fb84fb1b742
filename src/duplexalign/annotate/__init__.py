"""The annotate stage: timing rules and the content judge applied to every model reply."""
