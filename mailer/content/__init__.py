"""Issue content: parsing, Markdown, rendering to HTML email and plain text, checks."""
