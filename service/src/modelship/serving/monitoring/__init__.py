"""Production monitoring: data quality and drift against the card's training distributions."""
