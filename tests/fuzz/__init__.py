"""Protocol fuzzing: schema-drawn requests, mutations of captured client
requests and random frames against a live broker (issue 13)."""
