"""One exception tree. Every message says what went wrong and what to do about it.

The CLI turns any `MailerError` into one line on stderr and exit code 1; nothing else
should ever reach the user as a traceback.
"""


class MailerError(Exception):
    """Base of every error mailer reports to a user."""


class ConfigError(MailerError):
    """A setting is missing or invalid. Deliberately apart from delivery errors."""


class InputError(MailerError):
    """A file or value given by the user cannot be used (issue, CSV, template...)."""


class TemplateError(InputError):
    """A Jinja2 or MJML template failed; the message names the file and line."""


class StoreError(MailerError):
    """The database cannot be reached, or its schema is not one we can use."""


class DeliveryError(MailerError):
    """A provider refused or failed a request in a way that retrying will not fix."""


class SizeError(MailerError):
    """The built HTML is too large: Gmail would clip it."""
