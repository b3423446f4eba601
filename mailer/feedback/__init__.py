"""What comes back after a send: reports of every source (SendGrid's webhook and
suppression lists, DSNs, complaints and mailto: unsubscribes in the bounce mailbox), read
into one event type and applied by one function under the status policy."""
