"""omnichannel-gateway: connects a business's customer channels to its helpdesk."""

__version__ = "0.1.0"
