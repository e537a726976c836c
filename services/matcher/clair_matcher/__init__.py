"""The matcher service: vulnerability feeds and vulnerability reports."""
