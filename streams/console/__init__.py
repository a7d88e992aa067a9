"""The billing team's console: pages served by every worker, behind a token (README, "Operations")."""
