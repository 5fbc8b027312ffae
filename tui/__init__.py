"""The Textual app. Talks to engine/ and advisor/ only through their public functions."""
