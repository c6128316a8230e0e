"""What runs a stack without a cloud: the program runner and the offline YAML render."""
