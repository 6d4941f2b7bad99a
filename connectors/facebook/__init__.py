"""Facebook Messenger through the Graph API: webhooks in, the Send API out."""
