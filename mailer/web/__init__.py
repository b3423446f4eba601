"""The web side: the unsubscribe/subscribe pages and webhooks (serve), and preview."""
