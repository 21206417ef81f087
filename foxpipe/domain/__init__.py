"""Pure domain: quiz, structures and beats, story, prompts, models, the lifecycle. No I/O."""
