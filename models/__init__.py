"""Pydantic records of the contract: inputs, outputs, the internal topic and table state."""
