"""The notifier service: notifications about newly affected manifests."""
