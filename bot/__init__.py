"""release-bot: GitHub Actions runs as data for Slack, pull requests and alerts."""
