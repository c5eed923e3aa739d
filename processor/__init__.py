"""Real-time contact-center KPI processor."""
