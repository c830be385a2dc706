"""Pipeline steps that apply the linking rules of Login with Amazon."""
