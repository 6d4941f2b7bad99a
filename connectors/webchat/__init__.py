"""Website webchat: a WebSocket protocol (design.md 7a), widget.js and a demo page."""
