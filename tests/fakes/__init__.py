"""Stand-ins for software that cannot be installed here (the Interbotix ROS API)."""
