"""The attrition domain: the employee schema, the HR extracts and synthetic employees."""
