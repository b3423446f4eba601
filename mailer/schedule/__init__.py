"""The weekly cadence: which issue is scheduled, due, late, sending or sent, and sending
what is due (`mailer send --due`)."""
