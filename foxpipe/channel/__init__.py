"""The channel: a library of saved heroes, a queue of stories made one after another, and
bulk review of a gallery. No Streamlit here."""
