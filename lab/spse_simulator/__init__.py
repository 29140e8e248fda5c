"""SPSE simulator (testing only): see app.py."""
