"""The proof that Part 4's graders grade: they pass the reference and other correct ways of writing each step, and
fail each common mistake with a message that names it."""

from tests.proofs import proofs

globals().update(proofs(4))
