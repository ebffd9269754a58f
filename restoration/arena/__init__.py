"""The arena room: the app's state, the Judge's scenes and pairs, the vote store and its sync,
ratings, the leaderboard, witnesses and submissions. The top room (docs/architecture.md)."""
