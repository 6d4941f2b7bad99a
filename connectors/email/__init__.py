"""E-mail: IMAP in (IDLE or polling), SMTP out, threaded like a helpdesk."""
