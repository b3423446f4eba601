"""One exception tree. Every message says what went wrong and what to do about it.

The CLI turns any `MailerError` into one line on stderr and exit code 1; nothing else
should ever reach the user as a traceback.

Delivery errors follow where they happened, which decides what the ledger records:
- `LocalError`: on this machine, before any byte left (a bad outbox folder, a message
  that cannot be built). Nothing was sent: stop, the recipients stay pending.
- `TransientError`: the provider certainly did not take the request and may later.
- `DeliveryError` (itself): the provider refused the request; retrying will not help.
- A permanent refusal of one recipient is a per-recipient `Outcome.failed`, and an error
  after bytes may have reached the provider is `Outcome.ambiguous`: never an exception.
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
    """Nothing of the request was taken: the provider refused it, or it never left.

    A provider that sends message by message (SMTP, the outbox) may fail after some of a
    group went out: it sets `partial` to the Outcome of those, so they are recorded as
    what they are and only the rest goes back to pending (never sent twice).
    """

    partial: object = None


class TransientError(DeliveryError):
    """The provider certainly did not accept the request, and may later: stop, keep pending."""


class LocalError(DeliveryError):
    """Failed on this machine before anything left it: stop, keep pending."""


class SizeError(MailerError):
    """The built HTML is too large: Gmail would clip it."""
