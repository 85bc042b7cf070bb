"""The dashboard's pages: Streamlit scripts that ``app.py``'s navigation runs, one per question (never imported)."""
