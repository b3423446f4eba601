"""SendGrid, in one place: the API client and its retry rules (api, http), the Mail Send
request (body), the provider (provider), its words for what happened (words), the signed
event webhook (webhook) and its suppression lists (suppressions)."""
