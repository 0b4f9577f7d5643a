"""cliniko2nutshell: move a clinic from Cliniko to Nutshell CRM, locally."""

__version__ = "0.1.0"

CONTACT_EMAIL_FALLBACK = "support@cliniko2nutshell.invalid"
