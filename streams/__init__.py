"""The Faust application: settings, topics, the stages of the topology, web views, health, metrics."""
