"""Replicate, all of it: its predictions API and its trainings API.

    predictions.py    Replicate's predictions API (https://api.replicate.com/openapi.json), and
                      its files API
    training.py       Replicate's trainings API: a subject's identity trained as a new version
"""
