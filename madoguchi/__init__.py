"""Madoguchi core: models and services shared by every front end. It registers no routes."""
