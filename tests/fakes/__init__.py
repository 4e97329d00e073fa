"""Local fakes of the outside services the product talks to, served on loopback for tests."""
