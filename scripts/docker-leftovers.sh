#!/usr/bin/env bash
# Fails when any container, network or volume labelled by faultline is left on the engine:
# every run removes its own on every exit path (images are a build cache and stay).
set -euo pipefail
label=dev.faultline.managed=true
left="$(docker ps -aq --filter "label=$label"; docker network ls -q --filter "label=$label"; docker volume ls -q --filter "label=$label")"
if [ -n "$left" ]; then
  echo "${1:-docker}: labelled docker resources left behind:" >&2
  echo "$left" >&2
  exit 1
fi
echo "${1:-docker}: no labelled container, network or volume left"
