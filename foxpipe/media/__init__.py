"""The finished Short: timeline, captions, music and the render."""
