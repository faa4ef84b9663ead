"""The `ddpm-course` command: the one place above everything else (graders, programs, the build) that ties them
together. Nothing imports it."""
