"""Audio and video assembly: narration word timings, the timeline, captions, music and the render."""
