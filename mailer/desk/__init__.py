"""The writer's desk: drafts from sources, the numbers, and guard rails before a send."""
